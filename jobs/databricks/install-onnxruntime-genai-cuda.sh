#!/bin/bash
# Databricks cluster init script for a GPU runtime: installs the CUDA builds of onnxruntime-genai
# and onnxruntime (onnxruntime-genai-cuda, onnxruntime-gpu) at the versions of the CPU pins in
# src/main/python/requirements.txt. genai-batch finds them in the cluster Python's site-packages by
# itself; with --execution-provider cuda it refuses a library without the CUDA provider, naming
# these packages. Upload to a volume and list it in init_scripts of a GPU cluster.
set -euo pipefail
/databricks/python/bin/pip uninstall --quiet --yes onnxruntime onnxruntime-genai 2>/dev/null || true
/databricks/python/bin/pip install --quiet onnxruntime-genai-cuda==0.12.0 onnxruntime-gpu==1.28.0
