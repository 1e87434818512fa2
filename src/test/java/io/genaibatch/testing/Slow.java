package io.genaibatch.testing;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.Tag;

/**
 * A test class or case that takes seconds to tens of seconds because it starts servers or child
 * processes (an MLflow server of its own, {@code log_model} and reference predictions in Python,
 * child JVMs). {@code jobs/test.sh --fast} leaves these out ({@code -DexcludedGroups=slow}); the
 * full run and CI run them. docs/testing.md lists what each proves.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Tag("slow")
public @interface Slow {}
