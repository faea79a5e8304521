from __future__ import annotations

import sys

from tfaudit.cli.entry import main

sys.exit(main())
