"""The webhooks function: a finished public-API job's status POSTed to its webhook URL, signed."""
