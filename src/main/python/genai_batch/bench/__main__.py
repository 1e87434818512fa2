import sys

args = sys.argv[1:]
if "--workload=traces" in args or any(a == "--workload" and b == "traces" for a, b in zip(args, args[1:])):
    # The traces workload measures the tracking server, not the engine: its own module and flags.
    from genai_batch.bench import traces

    i = args.index("--workload=traces") if "--workload=traces" in args else args.index("--workload")
    sys.exit(traces.main(args[:i] + args[i + (1 if args[i] == "--workload=traces" else 2):]))

from genai_batch.bench.run import main

sys.exit(main())
