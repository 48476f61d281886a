"""Developer tooling run from a repository checkout (`python -m tools.demo`,
`python -m tools.reliability`); not part of the installed package."""
