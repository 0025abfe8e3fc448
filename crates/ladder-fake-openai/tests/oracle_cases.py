"""What both oracle scripts share: a decorator that runs a case at once, names it when it
fails, and counts the ones that passed."""
import sys

passed = 0


def case(name):
    def run(f):
        global passed
        try:
            f()
        except Exception as e:  # noqa: BLE001 - report which case failed, then fail
            print(f"FAILED {name}: {type(e).__name__}: {e}", file=sys.stderr)
            raise
        passed += 1
        print(f"ok {name}")
    return run
