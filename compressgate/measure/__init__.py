"""What a ``.tflite`` file does and weighs, with no TensorFlow: LiteRT predictions and
interleaved latency (``litert``), peak memory (``memory``), the flatbuffer's ops and
weights (``flatbuffer``), distinct weight values per channel (``clusters``), the runtimes
besides LiteRT with XNNPACK (``targets``, ``tflm``), the statistics on them (``stats``)
and the machine they were measured on (``machine``)."""
