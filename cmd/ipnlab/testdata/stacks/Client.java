// Java's HttpClient (java.net.http), as a Spring service posts back.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Client {
    public static void main(String[] args) throws Exception {
        byte[] body = System.in.readAllBytes();
        HttpRequest req = HttpRequest.newBuilder(URI.create(args[0]))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("User-Agent", "stack-client/1.0")
            .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build();
        HttpResponse<String> res = HttpClient.newHttpClient().send(req, HttpResponse.BodyHandlers.ofString());
        System.out.print(res.body());
    }
}
