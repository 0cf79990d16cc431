"""Batch predictions on AWS serverless: the code shared by every Lambda (the common layer)."""
