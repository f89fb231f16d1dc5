"""Azure OpenAI: the OpenAI wire format on Azure's URLs and credentials."""
