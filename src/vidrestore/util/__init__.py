"""Small helpers every long-running part uses: progress bars and read-ahead (they import nothing of vidrestore)."""
