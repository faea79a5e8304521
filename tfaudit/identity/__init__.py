"""Who ran it: the OS user, git, the CI run, the cloud identity, OIDC claims, and the `expect` cross-check."""
