from rnnmem.cli import main

raise SystemExit(main())
