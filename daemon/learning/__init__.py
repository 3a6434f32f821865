"""Recalibration: the factors learned from measured outcomes (:mod:`.factors`), the ledger's
checkpoint of them (:mod:`.checkpoint`), and what a recorded end teaches them (:mod:`.lessons`).
"""
