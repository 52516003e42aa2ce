"""The participant's page, `GET /c/{campaignId}`: served by the public door, no build step."""
