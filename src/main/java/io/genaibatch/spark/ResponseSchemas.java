package io.genaibatch.spark;

import com.fasterxml.jackson.databind.JsonNode;
import io.genaibatch.engine.EngineException;
import java.util.ArrayList;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The Spark type of the answers a JSON Schema asks for, to parse them with {@code from_json}.
 *
 * <p>Mapping: {@code string} (with or without {@code enum} or {@code format}) to {@code
 * StringType}; {@code integer} to {@code LongType}; {@code number} to {@code DoubleType}; {@code
 * boolean} to {@code BooleanType}; {@code array} to an {@code ArrayType} of its {@code items};
 * {@code object} with {@code properties} to a {@code StructType}, fields in the schema's order;
 * {@code object} with only a schema in {@code additionalProperties} to a {@code MapType} from
 * string; {@code ["string","null"]}-style types and {@code anyOf}/{@code oneOf} whose branches
 * map to one type (ignoring {@code null}) to that type; {@code $ref} to {@code #/$defs/...}, {@code
 * #/definitions/...} or any other pointer into the schema, resolved. Every field is nullable: an
 * answer may leave out optional properties, and a row with no answer has none.
 *
 * <p>What has no one Spark type (no {@code type}, branches of different types, {@code allOf}, an
 * object without properties, a recursive {@code $ref}) becomes {@code StringType}: Spark's JSON
 * reader then keeps that field's JSON text as it was in the answer (a string's value without its
 * quotes; a number, object or array as its JSON), so nothing is lost and the user can parse it
 * further. That is more useful than refusing the whole schema for one loose field.
 *
 * <p>Written here by hand: Spark reads JSON into a struct it is given but has no reader of JSON
 * Schema, and the JSON Schema libraries validate documents but do not map a schema to Spark types.
 */
public final class ResponseSchemas {
  private ResponseSchemas() {}

  /**
   * The struct of the answers to {@code schema}.
   *
   * @param where what the schema came from, for messages
   * @throws EngineException naming {@code where} when the top level is not an object schema with
   *     properties, or a {@code $ref} points outside the schema or at nothing
   */
  public static StructType structOf(JsonNode schema, String where) {
    Mapper m = new Mapper(schema, where);
    JsonNode top = m.resolve(schema, "");
    if (top == null || !isObject(top) || !top.path("properties").isObject() || top.path("properties").isEmpty()) {
      throw new EngineException(where + ": --parse-response needs a JSON Schema whose top level is an object"
          + " with properties ({\"type\":\"object\",\"properties\":{...}}), to make one column of each;"
          + " this one is " + (top == null ? "nothing" : describe(top)) + ". Without --parse-response the"
          + " answer stays the response text.");
    }
    return m.struct(top, "");
  }

  private static boolean isObject(JsonNode s) {
    JsonNode type = s.get("type");
    return type == null ? s.has("properties") : type.isTextual() && type.asText().equals("object");
  }

  private static String describe(JsonNode s) {
    JsonNode type = s.get("type");
    return type == null ? "a schema without \"type\"" : "of type " + type;
  }

  /** One conversion: the root for {@code $ref}s and the refs being expanded, to stop recursion. */
  private static final class Mapper {
    private final JsonNode root;
    private final String where;
    private final Deque<String> expanding = new ArrayDeque<>();

    Mapper(JsonNode root, String where) {
      this.root = root;
      this.where = where;
      expanding.push("#"); // The whole schema is being expanded: a $ref to it is recursive.
    }

    /** Follows {@code $ref}s; null for a recursive one (already being expanded). */
    JsonNode resolve(JsonNode s, String field) {
      JsonNode node = s;
      int hops = 0;
      while (node != null && node.has("$ref") && node.get("$ref").isTextual()) {
        String ref = node.get("$ref").asText();
        if (!ref.startsWith("#")) {
          throw new EngineException(where + ": the JSON Schema's $ref " + ref + (field.isEmpty() ? "" : " at " + field)
              + " points outside the schema; only #/$defs/... and other pointers into it are supported");
        }
        if (expanding.contains(ref) || ++hops > 32) {
          return null;
        }
        JsonNode target = root.at(ref.substring(1));
        if (target.isMissingNode()) {
          throw new EngineException(where + ": the JSON Schema's $ref " + ref + (field.isEmpty() ? "" : " at " + field)
              + " points at nothing in the schema");
        }
        node = target;
      }
      return node;
    }

    StructType struct(JsonNode objectSchema, String path) {
      List<StructField> fields = new ArrayList<>();
      for (Iterator<Map.Entry<String, JsonNode>> it = objectSchema.get("properties").fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> p = it.next();
        String fieldPath = path.isEmpty() ? p.getKey() : path + "." + p.getKey();
        fields.add(DataTypes.createStructField(p.getKey(), type(p.getValue(), fieldPath), true));
      }
      return DataTypes.createStructType(fields);
    }

    DataType type(JsonNode schema, String path) {
      String ref = schema.has("$ref") ? schema.get("$ref").asText() : null;
      JsonNode s = resolve(schema, path);
      if (s == null || !s.isObject()) {
        return DataTypes.StringType;
      }
      if (ref != null) {
        expanding.push(ref);
      }
      try {
        return typeOf(s, path);
      } finally {
        if (ref != null) {
          expanding.pop();
        }
      }
    }

    private DataType typeOf(JsonNode s, String path) {
      JsonNode type = s.get("type");
      if (type == null) {
        for (String union : List.of("anyOf", "oneOf")) {
          if (s.path(union).isArray()) {
            return common(s.get(union), path);
          }
        }
        if (s.has("properties")) {
          return struct(s, path);
        }
        return DataTypes.StringType;
      }
      if (type.isArray()) {
        String only = null;
        for (JsonNode t : type) {
          if (t.asText().equals("null")) {
            continue;
          }
          if (only != null) {
            return DataTypes.StringType;
          }
          only = t.asText();
        }
        return only == null ? DataTypes.StringType : named(only, s, path);
      }
      return named(type.asText(), s, path);
    }

    private DataType named(String type, JsonNode s, String path) {
      return switch (type) {
        case "integer" -> DataTypes.LongType;
        case "number" -> DataTypes.DoubleType;
        case "boolean" -> DataTypes.BooleanType;
        case "array" -> DataTypes.createArrayType(
            s.path("items").isObject() ? type(s.get("items"), path + "[]") : DataTypes.StringType, true);
        case "object" -> {
          if (s.path("properties").isObject() && !s.get("properties").isEmpty()) {
            yield struct(s, path);
          }
          if (s.path("additionalProperties").isObject()) {
            yield DataTypes.createMapType(DataTypes.StringType, type(s.get("additionalProperties"), path + "{}"), true);
          }
          yield DataTypes.StringType;
        }
        default -> DataTypes.StringType;
      };
    }

    /** The one type all branches map to, {@code null} branches aside; StringType when they differ. */
    private DataType common(JsonNode branches, String path) {
      DataType common = null;
      for (JsonNode b : branches) {
        if (b.path("type").asText("").equals("null")) {
          continue;
        }
        DataType t = type(b, path);
        if (common != null && !common.equals(t)) {
          return DataTypes.StringType;
        }
        common = t;
      }
      return common == null ? DataTypes.StringType : common;
    }
  }
}
