"""What a ``.tflite`` file does and weighs, with no TensorFlow: LiteRT predictions and
interleaved latency (``litert``), the same pairs timed in fresh processes
(``processes``), at more threads (``threads``), and under xdist in a quiet phase
(``quiet``), peak memory (``memory``), the flatbuffer's ops and weights (``flatbuffer``),
distinct weight values per channel (``clusters``), which ops XNNPACK took (``coverage``)
and the time in the others (``offload``), the runtimes besides LiteRT with XNNPACK
(``targets``, ``tflm``), a board measured over SSH (``remote``, and its child
``board``), the statistics on them (``stats``) and the machine they were measured on
(``machine``)."""
