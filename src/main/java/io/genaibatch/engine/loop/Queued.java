package io.genaibatch.engine.loop;

import io.genaibatch.engine.Completion;

/** A completion in the decode loop with the ticket (window) it belongs to. */
record Queued(Ticket ticket, Completion completion) {}
