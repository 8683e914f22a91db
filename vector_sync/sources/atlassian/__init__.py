"""What the Atlassian kinds (confluence, jira) share: one HTTP client for their REST APIs
(`client.AtlassianClient`) that pages, waits out rate limits, retries outages and keeps the
credentials out of every message."""
