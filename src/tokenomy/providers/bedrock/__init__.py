"""AWS Bedrock through the Converse API."""
