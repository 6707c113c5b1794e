"""Benchmarks of Portfolio Graph: HTTP load beside PostGraphile and a hand-written SQL
"limit" (``python -m bench run``), and an in-process profile target
(``python -m bench inprocess``). See bench/README.md."""
