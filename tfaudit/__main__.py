from __future__ import annotations

import sys

from tfaudit.cli.app import main

sys.exit(main())
