"""`make bench`: measured side by side on the demo corpus; never part of the tests."""
