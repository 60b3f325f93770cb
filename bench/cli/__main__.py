"""`python -m bench.cli ...`: the `bench` command without its console script (a lent GPU machine runs the tree)."""
from bench.entry import main

main()
