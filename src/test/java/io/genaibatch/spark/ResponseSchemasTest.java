package io.genaibatch.spark;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.from_json;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.genaibatch.engine.EngineException;
import io.genaibatch.testing.SparkTestBase;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

class ResponseSchemasTest extends SparkTestBase {
  static final ObjectMapper JSON = new ObjectMapper();

  static JsonNode json(String text) throws Exception {
    return JSON.readTree(text.replace('\'', '"'));
  }

  static StructType struct(String schema) throws Exception {
    return ResponseSchemas.structOf(json(schema), "--response-format");
  }

  @Test
  void scalarsInSchemaOrderAllNullable() throws Exception {
    StructType t = struct("{'type':'object','properties':{'z':{'type':'string','enum':['a','b']},"
        + "'when':{'type':'string','format':'date-time'},'n':{'type':'integer'},'x':{'type':'number'},"
        + "'ok':{'type':'boolean'},'maybe':{'type':['string','null']}},'required':['z']}");
    assertThat(t.fieldNames()).containsExactly("z", "when", "n", "x", "ok", "maybe");
    assertThat(t.fields()).allSatisfy(f -> assertThat(f.nullable()).isTrue());
    assertThat(t.apply("z").dataType()).isEqualTo(DataTypes.StringType);
    assertThat(t.apply("when").dataType()).isEqualTo(DataTypes.StringType);
    assertThat(t.apply("n").dataType()).isEqualTo(DataTypes.LongType);
    assertThat(t.apply("x").dataType()).isEqualTo(DataTypes.DoubleType);
    assertThat(t.apply("ok").dataType()).isEqualTo(DataTypes.BooleanType);
    assertThat(t.apply("maybe").dataType()).isEqualTo(DataTypes.StringType);
  }

  @Test
  void nestedObjectsArraysRefsAndUnions() throws Exception {
    StructType t = struct("{'$defs':{'tag':{'type':'object','properties':{'name':{'type':'string'},'w':{'type':'number'}}}},"
        + "'definitions':{'id':{'type':['integer','null']}},"
        + "'type':'object','properties':{"
        + "'author':{'type':'object','properties':{'name':{'type':'string'},'age':{'type':'integer'}}},"
        + "'tags':{'type':'array','items':{'$ref':'#/$defs/tag'}},"
        + "'ids':{'type':'array','items':{'$ref':'#/definitions/id'}},"
        + "'scores':{'type':'object','additionalProperties':{'type':'number'}},"
        + "'either':{'anyOf':[{'type':'integer'},{'type':'null'}]},"
        + "'loose':{'anyOf':[{'type':'integer'},{'type':'object','properties':{'a':{'type':'string'}}}]},"
        + "'untyped':{},"
        + "'self':{'$ref':'#'}}}");
    assertThat(t.apply("author").dataType()).isEqualTo(new StructType()
        .add("name", DataTypes.StringType, true).add("age", DataTypes.LongType, true));
    StructType tag = new StructType().add("name", DataTypes.StringType, true).add("w", DataTypes.DoubleType, true);
    assertThat(t.apply("tags").dataType()).isEqualTo(DataTypes.createArrayType(tag, true));
    assertThat(t.apply("ids").dataType()).isEqualTo(DataTypes.createArrayType(DataTypes.LongType, true));
    assertThat(t.apply("scores").dataType())
        .isEqualTo(DataTypes.createMapType(DataTypes.StringType, DataTypes.DoubleType, true));
    assertThat(t.apply("either").dataType()).isEqualTo(DataTypes.LongType);
    assertThat(t.apply("loose").dataType()).isEqualTo(DataTypes.StringType);
    assertThat(t.apply("untyped").dataType()).isEqualTo(DataTypes.StringType);
    assertThat(t.apply("self").dataType()).as("recursive ref").isEqualTo(DataTypes.StringType);
  }

  @Test
  void aTopLevelRefIsFollowed() throws Exception {
    StructType t = struct("{'$ref':'#/$defs/a','$defs':{'a':{'type':'object','properties':{'k':{'type':'boolean'}}}}}");
    assertThat(t.fieldNames()).containsExactly("k");
  }

  @Test
  void nonObjectSchemasAndBadRefsAreRefusedNamingWhere() {
    for (String s : List.of("{'type':'string'}", "{'type':'array','items':{'type':'integer'}}",
        "{'type':'object'}", "{'anyOf':[{'type':'string'}]}")) {
      assertThatThrownBy(() -> struct(s))
          .as(s)
          .isInstanceOf(EngineException.class)
          .hasMessageStartingWith("--response-format: --parse-response needs a JSON Schema whose top level is an object");
    }
    assertThatThrownBy(() -> struct("{'type':'object','properties':{'a':{'$ref':'#/$defs/missing'}}}"))
        .hasMessageContaining("$ref #/$defs/missing at a points at nothing");
    assertThatThrownBy(() -> struct("{'type':'object','properties':{'a':{'$ref':'other.json'}}}"))
        .hasMessageContaining("points outside the schema");
  }

  @Test
  void sparkFromJsonReadsAnAnswerWithTheStruct() throws Exception {
    StructType t = struct("{'type':'object','properties':{'label':{'type':'string'},'score':{'type':'integer'},"
        + "'tags':{'type':'array','items':{'type':'string'}},"
        + "'meta':{'type':'object','properties':{'ok':{'type':'boolean'}}},"
        + "'loose':{'anyOf':[{'type':'integer'},{'type':'object'}]}}}");
    Dataset<Row> answers = spark.createDataset(List.of(
            "{\"label\":\"pos\",\"score\":4068,\"tags\":[\"a\",\"b\"],\"meta\":{\"ok\":true},\"loose\":{\"x\":[1,2]}}",
            "{\"label\":\"neg\"}"),
        Encoders.STRING()).toDF("response");
    List<Row> rows = answers.select(from_json(col("response"), t).alias("r")).select("r.*").collectAsList();
    Row full = rows.get(0);
    assertThat(full.getString(0)).isEqualTo("pos");
    assertThat(full.getLong(1)).isEqualTo(4068L);
    assertThat(full.getList(2)).containsExactly("a", "b");
    assertThat(full.getStruct(3).getBoolean(0)).isTrue();
    assertThat(full.getString(4)).as("a loose field keeps its JSON text").isEqualTo("{\"x\":[1,2]}");
    Row partial = rows.get(1);
    assertThat(partial.getString(0)).isEqualTo("neg");
    assertThat(partial.isNullAt(1)).isTrue();
    assertThat(partial.isNullAt(3)).isTrue();
  }
}
