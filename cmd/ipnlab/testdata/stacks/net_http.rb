# Ruby's Net::HTTP, as a Rails gem posts back.
require 'net/http'
require 'uri'

uri = URI(ARGV[0])
http = Net::HTTP.new(uri.host, uri.port)
http.use_ssl = true
http.open_timeout = 10
req = Net::HTTP::Post.new(uri.request_uri, 'Content-Type' => 'application/x-www-form-urlencoded', 'User-Agent' => 'stack-client/1.0')
req.body = $stdin.read
print http.request(req).body
