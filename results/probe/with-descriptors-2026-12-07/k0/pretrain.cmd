OMP_NUM_THREADS=2 molchannel pretrain --config configs/pretrain/cpu.yaml --data.corpus runs/corpora/moses20k --data.num_workers 0 \
    --trainer.max_steps=2000 --trainer.max_epochs=-1 --trainer.val_check_interval=1000 --trainer.check_val_every_n_epoch=null \
    --trainer.default_root_dir=runs/pretrain/k0-2000 --trainer.logger.init_args.save_dir=runs/pretrain/k0-2000 \
    --model.motif_source=anchor --model.attention_reg=support_scaled --model.hinge=softplus \
    --model.loss_weights.knowledge=0.0 --model.loss_weights.knowledge_from_epoch=0
