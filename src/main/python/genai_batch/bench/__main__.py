import sys

from genai_batch.bench.run import main

sys.exit(main())
