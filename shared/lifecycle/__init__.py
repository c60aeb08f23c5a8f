"""The data lifecycle: the retention sweep (account deletion and export: gateway/account_data.py)."""
