"""newsbot's benchmarks (issue 7): ``python -m bench``; what each figure means is in
BENCHMARKS.md. One module per benchmark: poll, delay, delivery, compose, ledger, memory."""
