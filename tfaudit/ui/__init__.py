"""What the user sees on the terminal: the console, terraform's stream rendered, progress bars."""
