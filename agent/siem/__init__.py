"""What the SIEM side needs from the agent's own definitions: the ECS fields a rule condition maps to, and the
detection rules as Sigma (`weightwarden rules export --sigma DIR`). The content shipped for SIEMs (index
template, dashboards, Splunk configuration, fleet correlations) is in the repository's siem/ folder."""
