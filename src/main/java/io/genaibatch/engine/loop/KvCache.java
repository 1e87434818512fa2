package io.genaibatch.engine.loop;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import com.sun.jna.Memory;
import io.genaibatch.engine.EngineException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * The key/value cache of one continuous batch, owned by the job: per layer one key and one value
 * buffer of {@code slots x kvHeads x capacity x headSize} float32, a region per slot. A decode step
 * runs rows {@code 0..k-1} over the first {@code k} regions (contiguous, so a tensor over them is
 * a view, never a copy), the same tensor bound as the graph's past input and its present output:
 * the graph's {@code GroupQueryAttention} writes each row's new key and value at that row's own
 * length, which the attention mask gives.
 *
 * <p>The buffers are native memory (JNA), outside the JVM heap and its direct-memory limit, sized
 * once and freed by {@link #close()}. One instance serves one thread (the decode loop's) at a time.
 */
public final class KvCache implements AutoCloseable {
  private final DecoderGraph graph;
  private final int slots;
  private final int capacity;
  private final Memory[] memory;
  private final ByteBuffer[] buffers;
  private final Map<Long, OnnxTensor[]> views = new HashMap<>();
  private final long slotBytes;
  private final long rowBytes;
  private boolean closed;

  /**
   * @param slots regions, each a row of a batch
   * @param capacity positions per region: the longest prompt and answer a row may have
   */
  KvCache(DecoderGraph graph, int slots, int capacity) {
    this.graph = graph;
    this.slots = slots;
    this.capacity = capacity;
    this.rowBytes = (long) graph.headSize() * Float.BYTES;
    this.slotBytes = (long) graph.kvHeads() * capacity * rowBytes;
    long layerBytes = slotBytes * slots;
    if (layerBytes > Integer.MAX_VALUE) {
      throw new EngineException("A key/value cache of " + slots + " slots of " + capacity + " positions needs "
          + layerBytes + " bytes per layer, more than one buffer holds: lower batch_size or max_length");
    }
    this.memory = new Memory[2 * graph.layers()];
    this.buffers = new ByteBuffer[memory.length];
    for (int i = 0; i < memory.length; i++) {
      memory[i] = new Memory(layerBytes);
      buffers[i] = memory[i].getByteBuffer(0, layerBytes).order(ByteOrder.nativeOrder());
    }
  }

  /** Bytes of a cache of {@code slots} regions of {@code capacity} positions. */
  static long bytes(DecoderGraph graph, int slots, int capacity) {
    return graph.bytesPerPosition() * slots * capacity;
  }

  public long bytes() {
    return bytes(graph, slots, capacity);
  }

  int slots() {
    return slots;
  }

  int capacity() {
    return capacity;
  }

  /**
   * Tensors over regions {@code from..from+count-1}: key then value of layer 0, then of layer 1...
   * Made once per range and kept: they are views of the same memory.
   */
  OnnxTensor[] view(OrtEnvironment env, int from, int count) throws OrtException {
    if (closed) {
      throw new IllegalStateException("The key/value cache is closed");
    }
    long key = ((long) from << 32) | count;
    OnnxTensor[] made = views.get(key);
    if (made != null) {
      return made;
    }
    long[] shape = {count, graph.kvHeads(), capacity, graph.headSize()};
    OnnxTensor[] out = new OnnxTensor[buffers.length];
    for (int i = 0; i < buffers.length; i++) {
      ByteBuffer region = buffers[i].slice((int) (from * slotBytes), (int) (count * slotBytes))
          .order(ByteOrder.nativeOrder());
      out[i] = OnnxTensor.createTensor(env, region.asFloatBuffer(), shape);
    }
    views.put(key, out);
    return out;
  }

  /** Copies the first {@code positions} of region {@code from} into region {@code to}, every layer. */
  void move(int from, int to, int positions) {
    copy(from, this, to, positions);
  }

  /**
   * Copies the first {@code positions} of region {@code slot} into the same region of {@code
   * into}, every layer ({@code into} may have more positions per region: its rows are further apart).
   */
  void copyTo(KvCache into, int slot, int positions) {
    copy(slot, into, slot, positions);
  }

  /** The first {@code positions} of region {@code from}, every layer and head, into region {@code to} of {@code into}. */
  private void copy(int from, KvCache into, int to, int positions) {
    int len = (int) (positions * rowBytes);
    for (int b = 0; b < buffers.length; b++) {
      for (int h = 0; h < graph.kvHeads(); h++) {
        into.buffers[b].put(into.offset(to, h, 0), buffers[b], offset(from, h, 0), len);
      }
    }
  }

  /**
   * A block of {@code tokens} positions for the prefix store, laid out as a region's slice: every
   * key and value buffer, head by head.
   */
  static Memory newBlock(DecoderGraph graph, int tokens) {
    return new Memory(graph.bytesPerPosition() * tokens);
  }

  /** Copies positions {@code from..from+count-1} of region {@code slot} into {@code block} (of {@code count} positions). */
  void save(int slot, int from, int count, Memory block) {
    blockCopy(slot, from, count, block, true);
  }

  /** Copies {@code count} positions of {@code block} into region {@code slot} from position {@code from}. */
  void load(Memory block, int count, int slot, int from) {
    blockCopy(slot, from, count, block, false);
  }

  /** Where position {@code position} of head {@code head} of region {@code slot} starts, in every buffer. */
  private int offset(int slot, int head, int position) {
    return (int) (slot * slotBytes + ((long) head * capacity + position) * rowBytes);
  }

  private void blockCopy(int slot, int from, int count, Memory block, boolean toBlock) {
    int len = (int) (count * rowBytes);
    ByteBuffer blockBuffer = block.getByteBuffer(0, block.size()).order(ByteOrder.nativeOrder());
    long stride = block.size() / ((long) buffers.length * graph.kvHeads());
    for (int b = 0; b < buffers.length; b++) {
      for (int h = 0; h < graph.kvHeads(); h++) {
        int region = offset(slot, h, from);
        int inBlock = (int) (((long) b * graph.kvHeads() + h) * stride);
        if (toBlock) {
          blockBuffer.put(inBlock, buffers[b], region, len);
        } else {
          buffers[b].put(region, blockBuffer, inBlock, len);
        }
      }
    }
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    for (OnnxTensor[] ts : views.values()) {
      for (OnnxTensor t : ts) {
        t.close();
      }
    }
    views.clear();
    for (Memory m : memory) {
      m.close();
    }
  }
}
