"""Where teams run tfaudit: the pre-commit hook and the CI integrations."""
