"""`python -m lb`: the same entry point as the `lb` console script."""

from lb.cli import main

raise SystemExit(main())
