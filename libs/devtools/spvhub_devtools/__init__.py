"""Build and test tooling of spvhub, kept out of the runtime library `spvhub_common`: the gateway config renderer
(`gateway_conf`), the contracts generator (`contracts`, which imports every service), the dev SMTP capture
(`devmail`), the pytest fixtures of the real stack (`testing`) and test access tokens (`testtokens`).
A service never imports this package."""
