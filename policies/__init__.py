"""The pure decision core: catalogs, carbon model, jobs, decisions and policies."""
