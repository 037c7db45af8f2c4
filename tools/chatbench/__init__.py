"""chatbench: the benchmark of docs/performance.md (``make bench``); see README.md."""
