#!/bin/bash
# Databricks cluster init script: installs the onnxruntime-genai wheel whose manylinux native
# library genai-batch loads (the Java binding's own needs glibc 2.38). genai-batch finds it in
# the cluster Python's site-packages by itself. Upload to a volume and list it in init_scripts.
set -euo pipefail
/databricks/python/bin/pip install --quiet onnxruntime-genai==0.12.0 onnxruntime==1.28.0
