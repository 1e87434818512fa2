package io.genaibatch.spark;

import io.genaibatch.settings.SettingValues;
import io.genaibatch.settings.Settings;
import io.genaibatch.spark.compat.SparkCompat;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntSupplier;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.analysis.SimpleAnalyzer$;
import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.And;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.ConditionalExpression;
import org.apache.spark.sql.catalyst.expressions.ExprId;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.HigherOrderFunction;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.NamedExpression$;
import org.apache.spark.sql.catalyst.expressions.Or;
import org.apache.spark.sql.catalyst.expressions.ScalaUDF;
import org.apache.spark.sql.catalyst.plans.logical.CatalystSerde$;
import org.apache.spark.sql.catalyst.plans.logical.DeserializeToObject;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.MapPartitions;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.Repartition;
import org.apache.spark.sql.catalyst.plans.logical.RepartitionOperation;
import org.apache.spark.sql.catalyst.plans.logical.SerializeFromObject;
import org.apache.spark.sql.catalyst.rules.Rule;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.StructType;

/**
 * The optimizer rule that scores {@code genai_generate} calls in batches, as the job and the
 * Transformer score a partition, the way Spark evaluates Python UDFs: a projection's call becomes a
 * scoring operator under the projection ({@code MapPartitions} over rows, through {@link
 * PartitionScorer}), which adds the call's result to its input's rows; the projection then reads the
 * result. One call is taken at a time, innermost first, until the projection has none left.
 *
 * <p>A call stays a row-at-a-time UDF where it is not evaluated for every row (under a {@code CASE
 * WHEN}, {@code IF}, {@code COALESCE}'s later arguments, {@code AND}/{@code OR}'s right side), inside a
 * lambda, or outside a projection (a filter, an aggregate, a join condition).
 */
final class BatchedCalls extends Rule<LogicalPlan> {
  private static final String PROMPT = "genai_prompt";
  private static final String OPTIONS = "genai_options";
  private static final String RESULT = "genai_result";

  private final ModelSpec spec;
  private final ScoringOptions options;
  private final SettingValues base;
  /** The task slots now: what {@code partitions} auto spreads the rows over. */
  private final IntSupplier slots;

  BatchedCalls(ModelSpec spec, ScoringOptions options, SettingValues base, IntSupplier slots) {
    this.spec = spec;
    this.options = options;
    this.base = base;
    this.slots = slots;
  }

  @Override
  public LogicalPlan apply(LogicalPlan plan) {
    LogicalPlan p = plan.mapChildren(c -> apply(c));
    boolean spread = true;
    while (p instanceof Project project) {
      ScalaUDF call = null;
      for (int i = 0; i < project.projectList().length() && call == null; i++) {
        call = batchable((Expression) project.projectList().apply(i), true, project.child());
      }
      if (call == null) {
        return project;
      }
      p = batched(project, call, spread);
      spread = false; // a projection's further calls score the rows where the first did
    }
    return p;
  }

  /** Whether {@code e} is a call of {@code genai_generate}'s UDF. */
  static boolean isCall(Expression e) {
    return e instanceof ScalaUDF u && u.udfName().isDefined() && u.udfName().get().equals(GenAiFunctions.IMPL);
  }

  /**
   * The innermost call in {@code e} evaluated for every row ({@code always}) whose arguments {@code
   * child} alone gives; null for none.
   */
  private static ScalaUDF batchable(Expression e, boolean always, LogicalPlan child) {
    for (int i = 0; i < e.children().length(); i++) {
      Expression c = e.children().apply(i);
      ScalaUDF inner = batchable(c, always && alwaysEvaluated(e, c), child);
      if (inner != null) {
        return inner;
      }
    }
    return always && isCall(e) && e.references().subsetOf(child.outputSet()) ? (ScalaUDF) e : null;
  }

  /** Whether {@code parent} evaluates its child {@code c} for every row it is evaluated for. */
  private static boolean alwaysEvaluated(Expression parent, Expression c) {
    if (parent instanceof HigherOrderFunction) {
      return false; // a lambda's arguments are the function's own variables
    }
    if (parent instanceof And || parent instanceof Or) {
      return parent.children().apply(0) == c;
    }
    if (parent instanceof ConditionalExpression ce) {
      for (int i = 0; i < ce.alwaysEvaluatedInputs().length(); i++) {
        if (ce.alwaysEvaluatedInputs().apply(i) == c) {
          return true;
        }
      }
      return false;
    }
    return true;
  }

  /**
   * {@code project} with {@code call} read from a scoring operator below it: the child's rows and
   * the call's arguments, scored a partition at a time into the child's columns (under their own
   * ids, so the projection's other expressions still resolve) and the call's result.
   */
  private LogicalPlan batched(Project project, ScalaUDF call, boolean spread) {
    LogicalPlan child = project.child();
    List<Attribute> kept = new ArrayList<>();
    List<NamedExpression> args = new ArrayList<>();
    for (int i = 0; i < child.output().length(); i++) {
      kept.add(child.output().apply(i));
      args.add(child.output().apply(i));
    }
    args.add(alias(call.children().apply(0), PROMPT, NamedExpression$.MODULE$.newExprId(), null));
    args.add(alias(call.children().apply(1), OPTIONS, NamedExpression$.MODULE$.newExprId(), null));
    Project withArgs = new Project(SparkCompat.asSeq(args), spread ? spread(child) : child);
    StructType in = withArgs.schema();
    Encoder<Row> inRows = SparkCompat.rowEncoder(in);
    Encoder<Row> outRows = SparkCompat.rowEncoder(in.add(RESULT, GenAiFunctions.RESULT));
    PartitionScorer scorer = new PartitionScorer(spec, options, new CallRows(base, options.limits(), kept.size()),
        null, false, null);
    LogicalPlan scored = CatalystSerde$.MODULE$.serialize(new MapPartitions(SparkCompat.partitionFunction(scorer),
        CatalystSerde$.MODULE$.generateObjAttr(outRows), deserialize(withArgs, inRows)), outRows);
    // The child's columns again under their own ids, then the result.
    List<NamedExpression> back = new ArrayList<>();
    for (int i = 0; i < kept.size(); i++) {
      Attribute a = kept.get(i);
      back.add(alias(scored.output().apply(i), a.name(), a.exprId(), a.metadata()));
    }
    Attribute result = scored.output().apply(scored.output().length() - 1);
    back.add(result);
    List<NamedExpression> list = new ArrayList<>();
    for (int i = 0; i < project.projectList().length(); i++) {
      list.add((NamedExpression) replace((Expression) project.projectList().apply(i), call, result));
    }
    return new Project(SparkCompat.asSeq(list), new Project(SparkCompat.asSeq(back), scored));
  }

  /**
   * {@code child} spread over partitions as the Transformer spreads its input: {@code partitions} N
   * over N, auto over the task slots (unless the child is repartitioned already: the optimizer has
   * run, the child's partition count is not known here, and a round-robin spread over the slots is
   * what auto gives an input with fewer), input as it is.
   */
  private LogicalPlan spread(LogicalPlan child) {
    int n = options.partitions();
    if (n == Settings.PARTITIONS_INPUT || (n == Settings.PARTITIONS_AUTO && child instanceof RepartitionOperation)) {
      return child;
    }
    return new Repartition(n == Settings.PARTITIONS_AUTO ? slots.getAsInt() : n, true, child);
  }

  /**
   * Rows of {@code plan} as objects of {@code rows}: the encoder's deserializer resolved against
   * the plan's columns, as the analyzer resolves a Dataset's (the optimizer runs after it).
   */
  private static DeserializeToObject deserialize(LogicalPlan plan, Encoder<Row> rows) {
    List<Attribute> output = new ArrayList<>();
    for (int i = 0; i < plan.output().length(); i++) {
      output.add(plan.output().apply(i));
    }
    DeserializeToObject resolved = (DeserializeToObject) SimpleAnalyzer$.MODULE$.execute(
        CatalystSerde$.MODULE$.deserialize(SparkCompat.relationOf(output), rows));
    return new DeserializeToObject(resolved.deserializer(), resolved.outputObjAttr(), plan);
  }

  private static Alias alias(Expression e, String name, ExprId id, Metadata metadata) {
    return new Alias(e, name, id, SparkCompat.asSeq(List.<String>of()), scala.Option.apply(metadata),
        SparkCompat.asSeq(List.<String>of()));
  }

  private static Expression replace(Expression e, ScalaUDF call, Attribute result) {
    return e == call ? result : e.mapChildren(c -> replace(c, call, result));
  }
}
