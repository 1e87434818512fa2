package io.genaibatch.spark;

import io.genaibatch.engine.ChatMessage;
import io.genaibatch.engine.ErrorKind;
import io.genaibatch.engine.Generation;
import io.genaibatch.engine.GenerationRequest;
import io.genaibatch.engine.LlmModel;
import io.genaibatch.engine.guidance.ResponseFormat;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.StructType;

/**
 * The job's and the Transformer's rows: the prompt (or chat messages) column and a row's own option
 * columns in, the input's columns and the output columns of DESIGN.md "Output rows" out.
 */
final class JobRows implements RowShape {
  private static final long serialVersionUID = 1L;

  private final ScoringOptions options;
  private final RowOptions rowOptions;
  private final int promptIdx;
  private final int messagesIdx;
  /** With a request struct as the messages column, the index of its messages field; else -1. */
  private final int requestMessages;

  JobRows(ScoringOptions options, StructType inputSchema) {
    this.options = options;
    this.rowOptions = RowOptions.resolve(options, inputSchema);
    this.promptIdx = options.chat() ? -1 : inputSchema.fieldIndex(options.promptColumn());
    this.messagesIdx = options.chat() ? inputSchema.fieldIndex(options.messagesColumn()) : -1;
    StructType request = RowOptions.requestStruct(options, inputSchema);
    this.requestMessages = request == null ? -1 : request.fieldIndex("messages");
  }

  @Override
  public Prepared prepare(Row r, int k, LlmModel model) {
    String prompt;
    if (options.chat()) {
      try {
        prompt = model.applyChatTemplate(messages(r, messagesIdx), true);
      } catch (RuntimeException e) {
        return Prepared.failed(Generation.failed(k, 0, ErrorKind.TEMPLATE, "messages: " + e.getMessage()));
      }
    } else {
      prompt = r.isNullAt(promptIdx) ? null : r.getString(promptIdx);
    }
    try {
      GenerationRequest request = rowOptions.request(r, prompt);
      return new Prepared(request, rowOptions.format(r), null);
    } catch (RowOptions.BadOption e) {
      return Prepared.failed(Generation.failed(k, 0, ErrorKind.BAD_OPTION, e.getMessage()));
    } catch (RuntimeException | StackOverflowError e) {
      // A row's own cells broke a check in a way no rule names: that row's error, never the task's.
      return Prepared.failed(Generation.failed(k, 0, ErrorKind.BAD_OPTION, "the row's options cannot be read: " + e));
    }
  }

  @Override
  public Row output(Row r, OutputSchema.Scored scored) {
    List<OutputSchema.Field> fields = OutputSchema.rowFields(options.chat(), rowOptions.manyCompletions());
    Object[] values = new Object[r.length() + fields.size()];
    for (int c = 0; c < r.length(); c++) {
      values[c] = r.get(c);
    }
    int i = r.length();
    for (OutputSchema.Field f : fields) {
      values[i++] = f.value().apply(scored);
    }
    return RowFactory.create(values);
  }

  private List<ChatMessage> messages(Row r, int idx) {
    if (r.isNullAt(idx)) {
      throw new IllegalArgumentException("is null");
    }
    List<Row> list;
    if (requestMessages >= 0) {
      // A whole llm/v1/chat request: its messages field.
      Row request = r.getStruct(idx);
      if (request.isNullAt(requestMessages)) {
        throw new IllegalArgumentException("messages is null");
      }
      list = request.getList(requestMessages);
    } else {
      list = r.getList(idx);
    }
    if (list.isEmpty()) {
      throw new IllegalArgumentException("is empty");
    }
    List<ChatMessage> out = new ArrayList<>(list.size());
    for (int i = 0; i < list.size(); i++) {
      Row m = list.get(i);
      if (m == null) {
        throw new IllegalArgumentException("message " + i + " is null");
      }
      String role = m.isNullAt(m.fieldIndex("role")) ? null : m.getString(m.fieldIndex("role"));
      String content = m.isNullAt(m.fieldIndex("content")) ? null : m.getString(m.fieldIndex("content"));
      if (role == null || content == null) {
        throw new IllegalArgumentException("message " + i + " needs a role and a content");
      }
      out.add(new ChatMessage(role, content));
    }
    return out;
  }
}
