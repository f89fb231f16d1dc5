"""Google Gemini: the Generative Language API and Vertex AI."""
