"""`python -m corpora`: see corpora.cli."""

from corpora.cli import main

raise SystemExit(main())
