package io.genaibatch.engine.loop;

import io.genaibatch.engine.EngineException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The key/value blocks of prompt prefixes the executor's decode loop has computed, kept across
 * windows and tasks so that a row starting with a cached prefix computes only the rest of its
 * prompt. Plain Java: what a block holds ({@code B}, native memory in the loop) is made and filled
 * by the caller; this class decides which blocks exist, which a prompt may reuse and which go.
 *
 * <p>A block is {@link #blockTokens()} consecutive prompt tokens at a block boundary. Its key is
 * its parent block (the one before it; none for the first) and its own tokens, so a key names a
 * whole prefix: a hash chain, as vLLM's automatic prefix caching keys its blocks. The keys are
 * compared exactly (parent by identity, tokens by value), never by hash alone, so a collision can
 * never hand a row another prompt's cache. Chosen over a radix tree (SGLang): fixed blocks make
 * every entry the same size, so the byte bound is a block count and eviction is per block; a
 * radix tree's token-exact matches would save at most {@code blockTokens - 1} tokens per row.
 *
 * <p>Bounded by {@link #limitBytes()}: when a new block would pass it, the least recently used
 * block that has no child is freed first (a block with children is the prefix of others; freeing
 * it would strand them), and never a block of the chain being extended. Rows never hold a block after admission (the loop copies a match into the
 * row's own cache region at once), so no live row pins one. A match is touched leaf first, so the
 * chain's root is the most recent and its leaves leave first. Not thread-safe: the loop's thread
 * owns it.
 *
 * @param <B> what one block holds
 */
final class PrefixStore<B extends AutoCloseable> {
  /** One block: its place in the chain and what it holds. */
  static final class Block<B extends AutoCloseable> {
    private final Key key;
    final B data;
    private int children;
    /** Set while a prompt's chain is being extended: the block must stay. */
    private boolean pinned;

    private Block(Key key, B data) {
      this.key = key;
      this.data = data;
    }
  }

  /** A block's identity: the block before it and its own tokens. */
  private static final class Key {
    private final Block<?> parent;
    private final int[] tokens;
    private final int hash;

    Key(Block<?> parent, int[] tokens) {
      this.parent = parent;
      this.tokens = tokens;
      this.hash = 31 * System.identityHashCode(parent) + Arrays.hashCode(tokens);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Key k && k.parent == parent && Arrays.equals(k.tokens, tokens);
    }

    @Override
    public int hashCode() {
      return hash;
    }
  }

  private final int blockTokens;
  private final long blockBytes;
  /** Every block, in access order: the eldest first. */
  private final LinkedHashMap<Key, Block<B>> blocks = new LinkedHashMap<>(64, 0.75f, true);
  private long limitBytes;
  private long peakBytes;

  /**
   * @param blockTokens tokens per block
   * @param blockBytes what one block holds, in bytes
   * @param limitBytes most bytes the blocks may hold together; 0 keeps none
   */
  PrefixStore(int blockTokens, long blockBytes, long limitBytes) {
    if (blockTokens < 1 || blockBytes < 1) {
      throw new IllegalArgumentException("A prefix block needs tokens and bytes");
    }
    this.blockTokens = blockTokens;
    this.blockBytes = blockBytes;
    this.limitBytes = Math.max(0, limitBytes);
  }

  int blockTokens() {
    return blockTokens;
  }

  long limitBytes() {
    return limitBytes;
  }

  /** Bytes the blocks hold now. */
  long bytes() {
    return blocks.size() * blockBytes;
  }

  /** The most bytes the blocks have held at once. */
  long peakBytes() {
    return peakBytes;
  }

  int size() {
    return blocks.size();
  }

  /** A new bound; blocks past it are freed at once (least recently used first). */
  void limit(long bytes) {
    limitBytes = Math.max(0, bytes);
    while (bytes() > limitBytes && evictOne()) {
      // freed one
    }
  }

  /**
   * The blocks of {@code tokens}' longest cached prefix, in order, at most {@code maxTokens} tokens'
   * worth of whole blocks; touched leaf first.
   */
  List<Block<B>> match(int[] tokens, int maxTokens) {
    List<Block<B>> found = new ArrayList<>();
    Block<B> parent = null;
    int whole = Math.min(tokens.length, Math.max(0, maxTokens)) / blockTokens;
    for (int b = 0; b < whole; b++) {
      Block<B> next = blocks.get(new Key(parent, slice(tokens, b)));
      if (next == null) {
        break;
      }
      found.add(next);
      parent = next;
    }
    touchLeafFirst(found);
    return found;
  }

  /**
   * Adds the whole blocks of {@code tokens} after the {@code known} ones ({@link #match}'s result for
   * the same tokens) until the bound stops it, each made by {@code make} and filled by {@code fill}
   * (given the block's index in the prompt); returns how many were added.
   */
  int add(int[] tokens, List<Block<B>> known, Supplier<B> make, Filler<B> fill) {
    Block<B> parent = known.isEmpty() ? null : known.get(known.size() - 1);
    List<Block<B>> chain = new ArrayList<>(known);
    chain.forEach(b -> b.pinned = true);
    try {
      return extend(tokens, chain, parent, make, fill);
    } finally {
      chain.forEach(b -> b.pinned = false);
      touchLeafFirst(chain);
    }
  }

  /** Adds {@link #add}'s blocks after {@code parent}, pinning each one added to {@code chain}. */
  private int extend(int[] tokens, List<Block<B>> chain, Block<B> parent, Supplier<B> make, Filler<B> fill) {
    int added = 0;
    for (int b = chain.size(); b < tokens.length / blockTokens; b++) {
      Key key = new Key(parent, slice(tokens, b));
      Block<B> had = blocks.get(key);
      if (had == null) {
        if (!roomForOne()) {
          break;
        }
        had = new Block<>(key, make.get());
        fill.fill(had.data, b);
        if (parent != null) {
          parent.children++;
        }
        blocks.put(key, had);
        added++;
        peakBytes = Math.max(peakBytes, bytes());
      }
      had.pinned = true;
      chain.add(had);
      parent = had;
    }
    return added;
  }

  /** Fills a new block with the key/value data of the prompt's block {@code index}. */
  interface Filler<B> {
    void fill(B block, int index);
  }

  /** Frees every block. */
  void clear() {
    blocks.values().forEach(PrefixStore::free);
    blocks.clear();
  }

  private int[] slice(int[] tokens, int block) {
    return Arrays.copyOfRange(tokens, block * blockTokens, (block + 1) * blockTokens);
  }

  private void touchLeafFirst(List<Block<B>> chain) {
    for (int i = chain.size() - 1; i >= 0; i--) {
      blocks.get(chain.get(i).key);
    }
  }

  /** Whether one more block fits, freeing the least recently used childless ones as needed. */
  private boolean roomForOne() {
    while (bytes() + blockBytes > limitBytes) {
      if (!evictOne()) {
        return false;
      }
    }
    return true;
  }

  /** Frees the least recently used block without children; false when there is none. */
  private boolean evictOne() {
    for (Iterator<Map.Entry<Key, Block<B>>> it = blocks.entrySet().iterator(); it.hasNext();) {
      Block<B> b = it.next().getValue();
      if (b.children == 0 && !b.pinned) {
        it.remove();
        if (b.key.parent != null) {
          b.key.parent.children--;
        }
        free(b);
        return true;
      }
    }
    return false;
  }

  private static void free(Block<? extends AutoCloseable> b) {
    try {
      b.data.close();
    } catch (Exception e) {
      throw new EngineException("Cannot free a prefix block: " + e.getMessage(), e);
    }
  }
}
