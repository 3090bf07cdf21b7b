from lsmtrace.cli import main

raise SystemExit(main())
