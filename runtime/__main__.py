"""`python -m runtime ...`: see runtime.cli."""

from runtime.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
