"""``python -m cli``: the same as the ``metaledger`` command."""

from .main import main

if __name__ == "__main__":
    main()
