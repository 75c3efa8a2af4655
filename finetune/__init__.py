"""Fine-tuning application (installed as ``molchannel.finetune``).

Holds the Lightning module with the prompt-selection head, the property data module and the
benchmark runners (MoleculeNet, MoleculeACE).
"""
