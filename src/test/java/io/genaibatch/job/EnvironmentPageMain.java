package io.genaibatch.job;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * Child-JVM entry for the secrets test: runs the job, then prints Spark's environment page as its
 * REST API serves it ({@code /api/v1/applications/<id>/environment}) while the job's SparkContext lives.
 */
public final class EnvironmentPageMain {
  public static void main(String[] args) throws Exception {
    int code = BatchScoringJob.execute(args);
    SparkContext sc = SparkSession.active().sparkContext();
    String url = sc.uiWebUrl().get() + "/api/v1/applications/" + sc.applicationId() + "/environment";
    HttpResponse<String> page = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url)).build(),
        HttpResponse.BodyHandlers.ofString());
    System.out.println("ENVIRONMENT " + page.statusCode() + " " + page.body());
    System.exit(code);
  }
}
