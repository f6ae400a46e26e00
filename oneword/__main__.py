from oneword.cli import main

raise SystemExit(main())
