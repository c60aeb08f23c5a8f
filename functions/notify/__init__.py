"""notify: turns job results into the user's notification (row first, then the push)."""
