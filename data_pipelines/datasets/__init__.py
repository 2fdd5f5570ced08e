"""Video datasets as TFDS datasets: layouts as the datasets ship, builders, reading.

  layouts  the distributed layout of each dataset (files, split lists, label files)
           -> a :class:`layouts.Listing` (labelled records per split, class names).
  k710     Kinetics-710 from the Kinetics-400/600/700 listings (label merge, de-duplication).
  stored   the one stored format (JPEG frames at short side <= 320, one TFDS example per
           frame, a per-video index in the dataset's metadata): encoding, and reading
           with ``tfds.data_source`` (random access, no TensorFlow).
  builders ``tfds.core.GeneratorBasedBuilder`` per dataset (``ucf101``, ``hmdb51``,
           ``ssv2``, ``kinetics400/600/700``, ``kinetics710``, ``video_folder``).

``layouts`` and ``k710`` import no TFDS; ``builders`` and the reading half of ``stored``
import ``tensorflow_datasets`` when used (it needs no TensorFlow for these).
"""
