package io.genaibatch.engine;

import java.io.Serializable;

/** One message of a chat, as in OpenAI's chat API: role, content and an optional name. */
public record ChatMessage(String role, String content, String name) implements Serializable {
  public ChatMessage(String role, String content) {
    this(role, content, null);
  }
}
