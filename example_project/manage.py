#!/usr/bin/env python
"""The example shop's command line: ``python example_project/manage.py runserver``."""

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    # The shop's own packages (shop_site, shop) are found from any working directory, and the
    # repository's golomt_payments when the package is not pip-installed.
    sys.path.insert(0, str(here))
    sys.path.append(str(here.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
