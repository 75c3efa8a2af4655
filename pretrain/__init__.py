"""Multi-channel pre-training application (installed as ``molchannel.pretrain``).

Holds the Lightning module and data module that pre-train the K prompt-guided channels
(molecule distancing, scaffold distancing, context prediction). See METHOD sections 4-5.
"""
